"""The HTTP edge: Starlette app, GraphQL view, middleware, CLI."""
