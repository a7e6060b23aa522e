"""`python -m grpc_edge`: run the edge service with the settings in the environment."""

from .server import serve

if __name__ == "__main__":
    serve()
