"""The hospital side: a signed intake client and a realistic settlement feed."""
