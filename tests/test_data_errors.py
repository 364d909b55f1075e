"""Malformed input: every case raises DatasetError, and its message names the file and the problem."""
from __future__ import annotations

import gzip
import io
import re

import numpy as np
import pytest
import scipy.io

from hraml_core.data import Dataset, DatasetError, load_file


def raises(path, problem: str, **kwargs) -> str:
    """load_file(path) must raise a DatasetError naming the file and matching ``problem``."""
    with pytest.raises(DatasetError) as err:
        load_file(path, **kwargs)
    msg = str(err.value)
    assert str(path) in msg, msg
    assert msg.startswith(str(path)), msg
    assert re.search(problem, msg), f"{problem!r} not in {msg!r}"
    return msg


def mat_bytes(**variables) -> bytes:
    buf = io.BytesIO()
    scipy.io.savemat(buf, variables)
    return buf.getvalue()


GOOD_ARFF = "@relation r\n@attribute a numeric\n@attribute b numeric\n@attribute y {p,q}\n@data\n" + "".join(
    f"{i},{i * 2},{'pq'[i % 2]}\n" for i in range(40)
)


# -- empty ---------------------------------------------------------------------------------------------

@pytest.mark.parametrize("filename", ["empty.csv", "empty.mat", "empty.arff", "empty.parquet", "empty.tsv"])
def test_empty_file(tmp_path, filename):
    path = tmp_path / filename
    path.write_bytes(b"")
    raises(path, r"empty \(0 bytes\)")


def test_empty_gzip_content(tmp_path):
    path = tmp_path / "empty.arff.gz"
    path.write_bytes(gzip.compress(b""))
    raises(path, "empty")


def test_whitespace_only_and_header_only_csv(tmp_path):
    blank = tmp_path / "blank.csv"
    blank.write_text("\n  \n")
    raises(blank, "empty")
    header = tmp_path / "header.csv"
    header.write_text("a,b,y\n")
    raises(header, "empty: no data rows")


def test_arff_without_data_rows(tmp_path):
    path = tmp_path / "nodata.arff"
    path.write_text("@relation r\n@attribute a numeric\n@attribute y {0,1}\n@data\n")
    raises(path, "no rows")


# -- non-numeric -----------------------------------------------------------------------------------------

def test_non_numeric_csv_feature(tmp_path):
    path = tmp_path / "text.csv"
    path.write_text("a,b,y\n1,2,0\n3,abc,1\n")
    raises(path, r"non-numeric feature column 'b': row 1 \(0-based\) holds 'abc'")


def test_non_numeric_arff_string_attribute(tmp_path):
    path = tmp_path / "text.arff"
    path.write_text("@relation r\n@attribute a numeric\n@attribute s string\n@attribute y {0,1}\n"
                    "@data\n1,'hello',0\n2,'world',1\n")
    raises(path, r"non-numeric feature 's'")


def test_non_numeric_mat_variable(tmp_path):
    path = tmp_path / "chars.mat"
    path.write_bytes(mat_bytes(fea=np.array(["ab", "cd", "ef"]), gnd=np.array([[1], [2], [1]])))
    raises(path, r"non-numeric data: variable 'fea' is text")


# -- NaN / inf ---------------------------------------------------------------------------------------------

@pytest.mark.parametrize("value, kind", [("nan", "NaN"), ("", "NaN"), ("inf", "infinite"), ("-inf", "infinite")])
def test_csv_nan_or_infinite_feature(tmp_path, value, kind):
    path = tmp_path / "bad.csv"
    path.write_text(f"a,b,y\n1,2,0\n3,{value},1\n5,6,0\n")
    raises(path, rf"features contain {kind}.*row 1 \(0-based\), column 'b'")


def test_mat_nan_feature(tmp_path):
    X = np.ones((6, 2))
    X[4, 1] = np.nan
    path = tmp_path / "nan.mat"
    path.write_bytes(mat_bytes(fea=X, gnd=np.arange(6).reshape(-1, 1) % 2))
    raises(path, r"NaN.*row 4 \(0-based\), column 1")


def test_arff_missing_feature_value_is_nan(tmp_path):
    path = tmp_path / "missing.arff"
    path.write_text("@relation r\n@attribute a numeric\n@attribute y {0,1}\n@data\n1,0\n?,1\n")
    raises(path, "NaN")


# -- ragged rows ---------------------------------------------------------------------------------------------

def test_ragged_csv_longer_row(tmp_path):
    path = tmp_path / "long.csv"
    path.write_text("a,b,y\n1,2,0\n3,4,5,1\n")
    raises(path, "ragged rows: line 3 has 4 fields but the header has 3")


def test_ragged_csv_shorter_row(tmp_path):
    path = tmp_path / "short.csv"
    path.write_text("a,b,y\n1,2,0\n3,1\n5,6,1\n")
    raises(path, "ragged rows: line 3 has 2 fields but the header has 3")


def test_ragged_arff_row(tmp_path):
    path = tmp_path / "ragged.arff"
    path.write_text("@relation r\n@attribute a numeric\n@attribute b numeric\n@attribute y {0,1}\n@data\n1,2,0\n3,1\n")
    raises(path, "malformed or truncated ARFF")


# -- X/Y length mismatch ---------------------------------------------------------------------------------------

def test_mat_x_y_length_mismatch(tmp_path):
    path = tmp_path / "mismatch.mat"
    path.write_bytes(mat_bytes(fea=np.ones((10, 3)), gnd=(np.arange(9) % 2).reshape(-1, 1)))
    raises(path, "X/Y length mismatch: the features have 10 rows but the labels have 9 rows")


def test_dataset_x_y_length_mismatch():
    with pytest.raises(DatasetError, match="mine: X/Y length mismatch"):
        Dataset(name="mine", X=np.ones((3, 2)), Y=np.array([0, 1]), task="classification")


# -- missing labels ----------------------------------------------------------------------------------------------

def test_csv_nan_in_label_column(tmp_path):
    path = tmp_path / "nolabel.csv"
    path.write_text("a,b,y\n1,2,0\n3,4,\n5,6,1\n")
    raises(path, r"missing labels in column 'y': 1 row without a label, the first is row 1 \(0-based\)$")


def test_csv_empty_cell_in_a_tag_column_says_how_to_write_no_tag(tmp_path):
    from hraml_core.data import load_file

    path = tmp_path / "tags.csv"
    path.write_text("a,b,tags\n1,2,rock;pop\n3,4,\n5,6,jazz\n")
    raises(path, r"1 row without a label, the first is row 1 \(0-based\); in this column of tag sets, "
                 r"a row with no tag is written as a lone ';'$")
    path.write_text("a,b,tags\n1,2,rock;pop\n3,4,;\n5,6,jazz\n")  # as the message says
    ds = load_file(path)
    assert ds.task == "multilabel" and ds.Y.tolist() == [[0, 1, 1], [0, 0, 0], [1, 0, 0]]


def test_csv_missing_label_column(tmp_path):
    path = tmp_path / "nocol.csv"
    path.write_text("a,b,y\n1,2,0\n3,4,1\n")
    raises(path, r"missing labels: label column 'target' not found \(columns: a, b, y\)", label_columns="target")
    raises(path, "missing labels: label column index 7 is out of range", label_columns=7)


def test_csv_nan_in_multilabel_columns(tmp_path):
    path = tmp_path / "nanml.csv"
    path.write_text("a,l1,l2\n1,0,1\n2,,1\n3,1,0\n")
    raises(path, r"missing labels: 1 row with NaN", label_columns=["l1", "l2"])


def test_fractions_as_class_labels(tmp_path):
    path = tmp_path / "fractions.csv"
    path.write_text("a,b,y\n1,2,1\n3,4,0.25\n5,6,2\n")
    raises(path, r"the class labels are non-integer numbers \(e.g. 0.25; 3 distinct values\)")
    whole = tmp_path / "whole.csv"
    whole.write_text("a,b,y\n1,2,1.0\n3,4,0.0\n5,6,2.0\n")  # integers written as floats are classes
    assert load_file(whole).classes.tolist() == [0, 1, 2]


def test_mat_without_label_variable(tmp_path):
    path = tmp_path / "onlyfea.mat"
    path.write_bytes(mat_bytes(fea=np.ones((4, 2))))
    raises(path, "missing labels: found the feature variable 'fea' but no label variable 'gnd'")


def test_arff_label_named_in_xml_is_absent(tmp_path):
    path = tmp_path / "ml.arff"
    path.write_text("@relation r\n@attribute a numeric\n@attribute l1 {0,1}\n@data\n1,0\n2,1\n")
    xml = tmp_path / "ml.xml"
    xml.write_text('<labels xmlns="http://mulan.sourceforge.net/labels"><label name="l1"/><label name="l9"/></labels>')
    raises(path, r"missing labels: label 'l9' named in ml\.xml is not an attribute")


def test_arff_missing_class_value(tmp_path):
    path = tmp_path / "noclass.arff"
    path.write_text("@relation r\n@attribute a numeric\n@attribute y {p,q}\n@data\n1,p\n2,?\n3,q\n")
    raises(path, "missing labels: 1 row without a label, the first is row 1")


def test_malformed_xml_label_file(tmp_path):
    path = tmp_path / "x.arff"
    path.write_text(GOOD_ARFF)
    xml = tmp_path / "x.xml"
    xml.write_text("<labels><label name='y'></labels")
    with pytest.raises(DatasetError, match=r"x\.xml: malformed or truncated XML label file"):
        load_file(path)


# -- undecodable text -----------------------------------------------------------------------------------------------

def test_latin1_csv(tmp_path):
    path = tmp_path / "latin1.csv"
    path.write_bytes("a,b,ville\n1,2,Zürich\n3,4,Genève\n".encode("latin-1"))
    raises(path, r"undecodable text: not valid UTF-8 \(byte 0xfc at offset \d+, line 2\)")


def test_binary_garbage_csv(tmp_path):
    path = tmp_path / "garbage.csv"
    path.write_bytes(np.random.default_rng(0).integers(0, 256, 2000, dtype=np.uint8).tobytes())
    raises(path, "undecodable text: the file holds binary data")


def test_latin1_arff(tmp_path):
    path = tmp_path / "latin1.arff"
    path.write_bytes("@relation caf\xe9\n@attribute a numeric\n@attribute y {0,1}\n@data\n1,0\n".encode("latin-1"))
    raises(path, "not valid UTF-8")


# -- truncated / unreadable binary formats ------------------------------------------------------------------------------

def test_truncated_mat(tmp_path):
    raw = mat_bytes(fea=np.random.default_rng(0).normal(size=(50, 4)), gnd=np.arange(50) % 3)
    path = tmp_path / "cut.mat"
    path.write_bytes(raw[: len(raw) // 2])
    raises(path, r"unreadable or truncated \.mat file")


def test_not_a_mat_file(tmp_path):
    path = tmp_path / "fake.mat"
    path.write_bytes(b"this is not a MATLAB file at all" * 10)
    raises(path, r"unreadable or truncated \.mat file")


def test_matlab_v73_file(tmp_path):
    header = b"MATLAB 7.3 MAT-file, Platform: GLNXA64, Created on: Mon Jan  1 00:00:00 2024 HDF5 schema 1.00 ."
    header = header.ljust(116, b" ") + b"\x00" * 8 + b"\x00\x02IM"
    path = tmp_path / "v73.mat"
    path.write_bytes(header + b"\x89HDF\r\n\x1a\n" + b"\x00" * 512)
    raises(path, r"MATLAB v7\.3 \(HDF5\).*h5py")


def test_truncated_arff_gz(tmp_path):
    raw = gzip.compress(GOOD_ARFF.encode())
    path = tmp_path / "cut.arff.gz"
    path.write_bytes(raw[: len(raw) // 2])
    raises(path, "truncated gzip file")


def test_corrupt_gzip(tmp_path):
    path = tmp_path / "notgz.arff.gz"
    path.write_bytes(b"plain text, not gzip\n")
    raises(path, "not a valid gzip file")


def test_truncated_plain_arff(tmp_path):
    path = tmp_path / "cut.arff"
    cut = GOOD_ARFF.index("7,14") + 3  # in the middle of a data row
    path.write_text(GOOD_ARFF[:cut])
    raises(path, "malformed or truncated ARFF")


def test_arff_cut_in_header(tmp_path):
    path = tmp_path / "head.arff"
    path.write_text("@relation r\n@attribute a num")
    raises(path, "malformed or truncated ARFF")


def test_truncated_parquet(tmp_path):
    pd = pytest.importorskip("pandas")
    pytest.importorskip("pyarrow")
    buf = io.BytesIO()
    pd.DataFrame({"a": np.arange(100.0), "y": np.arange(100) % 2}).to_parquet(buf)
    path = tmp_path / "cut.parquet"
    path.write_bytes(buf.getvalue()[:200])
    raises(path, r"unreadable or truncated Parquet file")


# -- label distributions that do not sum to 1 ----------------------------------------------------------------------------

def test_csv_distribution_not_summing_to_one(tmp_path):
    path = tmp_path / "ldl.csv"
    path.write_text("x,p1,p2,p3\n1,0.2,0.3,0.5\n2,0.2,0.3,0.4\n3,0.6,0.3,0.1\n")
    raises(path, r"label distribution rows must sum to 1; 1 rows do not \(row 1 sums to 0\.9\)",
           label_columns=["p1", "p2", "p3"])


def test_mat_distribution_not_summing_to_one(tmp_path):
    D = np.random.default_rng(0).dirichlet(np.ones(4), size=20)
    D[3] *= 1.5
    path = tmp_path / "ldl.mat"
    path.write_bytes(mat_bytes(features=np.ones((20, 2)), labels=D))
    raises(path, r"bad distribution labels: label distribution rows must sum to 1; 1 rows do not \(row 3")


def test_negative_distribution(tmp_path):
    path = tmp_path / "neg.csv"
    path.write_text("x,p1,p2\n1,1.5,-0.5\n2,0.5,0.5\n")
    raises(path, "must be non-negative", label_columns=["p1", "p2"], task="distribution")


# -- unknown formats -------------------------------------------------------------------------------------------------------

@pytest.mark.parametrize("filename", ["data.xyz", "data.mat.gz", "data", "data.xlsx"])
def test_unknown_extension(tmp_path, filename):
    path = tmp_path / filename
    path.write_text("1,2,3\n")
    raises(path, "unknown format: extension")


def test_unknown_format_argument(tmp_path):
    path = tmp_path / "data.csv"
    path.write_text("a,y\n1,0\n2,1\n")
    raises(path, "unknown format 'hdf5'", format="hdf5")
    raises(path, "option x_var= does not apply to csv files", x_var="fea")


def test_missing_file(tmp_path):
    raises(tmp_path / "absent.csv", "file not found")
    raises(tmp_path / "absent.mat", "file not found")


def test_single_class_is_reported(tmp_path):
    path = tmp_path / "oneclass.csv"
    path.write_text("a,y\n1,0\n2,0\n")
    raises(path, "at least 2 classes")


def test_mat_label_row_vector_length_mismatch(tmp_path):
    path = tmp_path / "rowvec.mat"
    path.write_bytes(mat_bytes(fea=np.ones((10, 3)), gnd=np.arange(9) % 2))  # saved as a 1 x 9 row
    raises(path, "the features have 10 rows but the labels have 9 rows")
