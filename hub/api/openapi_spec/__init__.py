"""What the OpenAPI document says beyond the routes themselves: parameters, and example bodies for "Try it out"."""
