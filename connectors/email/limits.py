"""Bounds on the work one mail may cause: hostile mail (deep nesting, thousands of parts, bombs) is expected."""

MAX_MAIL_BYTES = 25 * 1024 * 1024
MAX_DEPTH = 8  # message/rfc822 and multipart nesting
MAX_PARTS = 300
MAX_TEXT_CHARS = 1_000_000  # text read from the bodies, in all
MAX_INDICATORS = 500
