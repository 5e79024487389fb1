"""Infrastructure every app may use. It imports nothing from the project's apps, so any app can
depend on it without an import circle."""
