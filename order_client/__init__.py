"""The client side of the order system: the `order-saga` commands a shop's backend or a person
runs against the gRPC edge."""
