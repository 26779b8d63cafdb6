"""Understanding tasks built on the shared analysis path: classify, describe, ask, transcribe, read, tag, analyze."""
