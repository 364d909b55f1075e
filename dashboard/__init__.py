"""HRAML Explorer's live dashboard (Streamlit): ``streamlit run dashboard/app.py``."""
