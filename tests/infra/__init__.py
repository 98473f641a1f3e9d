"""CDK assertions on the synthesised stack."""
