"""The wire format: frames in and out, with no knowledge of sockets or Redis."""
