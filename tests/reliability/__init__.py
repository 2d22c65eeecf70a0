"""Reliability: bad input fails early and clearly; interrupted runs lose nothing but the last steps."""
