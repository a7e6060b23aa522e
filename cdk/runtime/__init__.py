"""Code that runs in AWS at deploy time (not a saga step, so not in order_saga.functions)."""
