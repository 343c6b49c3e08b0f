"""Crawling: feeds, licence marks, policy, fetch retries and pacing."""
