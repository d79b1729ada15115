"""synthvu dashboard entry point (streamlit run app.py)."""

import streamlit as st

st.set_page_config(page_title="synthvu", layout="wide")
st.title("synthvu")
st.write("Synthetic spine MRI vertebral units: generators, utility and privacy evaluation.")
