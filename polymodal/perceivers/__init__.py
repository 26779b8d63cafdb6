"""Small perceivers: evidence read from decoded media by rules and measurements, without a model."""
