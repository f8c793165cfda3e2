"""Floor plans of locations with leak pins (issue 18 part 5)."""
