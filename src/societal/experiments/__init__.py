"""The paper's experiments as command presets."""
