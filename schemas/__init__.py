"""Pydantic models shared by every layer: the hub config, the TLP scale, table names. No I/O."""
