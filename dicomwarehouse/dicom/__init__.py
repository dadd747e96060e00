"""One DICOM object into rows: header-only read, parse and flatten.

- ``read``: the header of one object through pydicom, salvaging what damaged files allow;
- ``ranged``: header-only reads of bucket objects (a seekable file made of ranged requests);
- ``values``: element values decoded straight from their bytes and typed for their columns;
- ``flatten``: one walk of a parsed header into a dicom_metadata row and dicom_elements rows;
- ``extract``: read + flatten of one object, every failure turned into its ingest_errors row.
"""
