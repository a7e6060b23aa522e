"""The local payment gateway: a server of its own on 127.0.0.1 that keeps docs/payment-gateway.md."""
