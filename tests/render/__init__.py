"""The formats: JSON documents against their schemas, markdown comments, the CI example."""
