"""The chat demo as an example file: ``streamlit run examples/streamlit_app.py -- --router
knnrouter --config configs/infer/knnrouter.yaml`` (the same page as ``llmrouter chat``)."""

from langchain_llmrouter.demo.app import main

main()
