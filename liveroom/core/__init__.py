"""Room rules and the local fan-out hub; no Redis wire details and no sockets here."""
