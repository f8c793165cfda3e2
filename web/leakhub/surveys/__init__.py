"""Surveys (audit campaigns), their scope and the comparison with the previous survey."""
