"""All filesystem access of hetsim lives in this package."""
