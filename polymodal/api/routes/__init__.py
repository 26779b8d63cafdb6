"""Routes by area: system (health, metrics, session), search, items, index jobs, tasks, assistant."""
