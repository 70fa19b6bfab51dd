"""liveroom: a real-time live-room interaction server (comments, likes, sales, draws)."""

__version__ = "0.1.0"
