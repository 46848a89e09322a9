"""new: autogenerate with guardrails; merge: one revision joining the heads."""
