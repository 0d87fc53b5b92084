"""The chat demo: `session` holds the logic (no Streamlit), `app` draws the Streamlit page.

Importing this package does not import Streamlit; ``llmrouter chat`` starts the page.
"""
