"""The live reporting dashboard: a process of the stats service that reads its snapshot and reminder
topics from the beginning and pushes every change to the browsers watching (server-sent events)."""
