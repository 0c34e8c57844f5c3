"""The three systems: information infrastructure, standards, cybersecurity."""
