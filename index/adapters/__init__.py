"""Dataset adapters: one module per annotation format."""
