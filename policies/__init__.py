"""Configuration model, compression policies and the LLMLingua-2 engine."""
