"""Ingest: records in, from files or from PubMed itself.

- ``files``: PubMed XML (efetch, baseline, update files), MEDLINE/.nbib and JSONL -> ``Record`` events
- ``eutils``: the E-utilities client (esearch, efetch), bounded against hostile servers
- ``fetch``: a search or PMID list saved as one PubMed XML file, resumably
"""

from .eutils import EUtils, Search
from .fetch import FetchReport, fetch_records, read_pmid_file
from .files import FORMATS, expand_sources, probe_source, read_source, sniff_format, split_labelled_abstract

__all__ = [
    "read_source",
    "probe_source",
    "expand_sources",
    "sniff_format",
    "split_labelled_abstract",
    "FORMATS",
    "EUtils",
    "Search",
    "FetchReport",
    "fetch_records",
    "read_pmid_file",
]
