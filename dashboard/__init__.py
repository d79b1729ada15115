"""Dashboard layer: what the pages share (frame, cached loaders, figures, montages, the HTML report).

Pages (``app_pages/``, routed by ``app.py``) only draw; every number they show comes from
``synthvu_core`` (cards, reports, samples). Modules here other than ``frame`` and ``loaders`` never
import streamlit, so figures and summaries can be tested and exported without a running app.
"""
