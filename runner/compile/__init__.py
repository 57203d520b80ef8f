"""Stage 2, pure: specs + config → the judgment requests (plan) and the strategy kinds that render them."""
