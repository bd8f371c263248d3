// Readers of the user's source files, one per data.format. Internal to
// load_source (src/data/load_source.cpp), which checks what they return.
#pragma once

#include <string>

#include "sisa/dataset.h"

namespace sisa {

// DataError unless `path` exists and is a regular file of at most
// kMaxDataFileBytes (a FIFO or a device would never end).
void check_data_file(const std::string& path);

Dataset load_idx(const DataConfig& c, const std::string& images, const std::string& labels);
// `train`: the training split, whose deletion weights (if configured) are
// read; a test file may lack the weight column or dataset.
Dataset load_csv(const DataConfig& c, const std::string& path, bool train);
Dataset load_hdf5(const DataConfig& c, const std::string& path, bool train);
// JSON Lines of text rows: one object per line with the text, label and
// optional id, group and weight fields (named by the data.*_column keys).
Dataset load_jsonl(const DataConfig& c, const std::string& path, bool train);
// Sets every row's weight from data.weights_file: a CSV whose header names
// the key column (the id, or the group when grouped) and a "weight" column.
// Keys it does not list weigh 0; a key the data lacks is an error.
void load_weights_file(const DataConfig& c, Dataset& d);

}  // namespace sisa
