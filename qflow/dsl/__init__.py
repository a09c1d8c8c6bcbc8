"""The workflow language: decorators, proxies and providers."""
