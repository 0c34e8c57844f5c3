"""The demo city: Zhengzhou as data, and a simulator that sends its sensor streams through the
hub's real ingestion path (``cityhub demo``)."""
