"""Widgets of the main window: they draw and forward user input, they hold no model state."""
