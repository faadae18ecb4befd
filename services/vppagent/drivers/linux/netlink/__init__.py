"""Raw rtnetlink for the linux driver: batched requests with acks, dumps, sockets inside other netns."""
