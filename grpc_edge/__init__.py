"""The gRPC edge of the order saga: takes orders, starts their sagas, lets clients follow them."""
