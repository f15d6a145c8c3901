"""WealthWise domain: the core of the product, free of web and queue frameworks."""
