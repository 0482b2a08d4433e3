"""Training-side code: corpus building, feature dumping, fitting."""
