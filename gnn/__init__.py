"""Graph neural network scoring: features, PyG data, models, training, scoring, explanations."""
