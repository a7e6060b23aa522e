"""Shared code of the order saga: used by every Lambda function (as a layer) and by the gRPC edge."""
