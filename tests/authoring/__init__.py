"""new: autogenerate with guardrails."""
