// GGUF files for Python: metadata as Python values, tensors as zero-copy numpy views of the map.
#include <cstring>

#include <pybind11/numpy.h>
#include <pybind11/stl.h>

#include "bindings/bindings.h"
#include "gguf/gguf_file.h"

namespace py = pybind11;
using qvl::GgufFile;
using qvl::GgufValue;
using qvl::GgufValueType;

namespace {

py::str decode_text(const std::string& text) {
  // Hostile files may hold invalid UTF-8; replace it rather than fail the whole load.
  PyObject* decoded = PyUnicode_DecodeUTF8(text.data(), static_cast<Py_ssize_t>(text.size()), "replace");
  if (!decoded) throw py::error_already_set();
  return py::reinterpret_steal<py::str>(decoded);
}

template <typename T>
py::array_t<T> to_numpy(const std::vector<T>& values) {
  py::array_t<T> array(static_cast<py::ssize_t>(values.size()));
  if (!values.empty()) std::memcpy(array.mutable_data(), values.data(), values.size() * sizeof(T));
  return array;
}

bool is_float(GgufValueType t) { return t == GgufValueType::F32 || t == GgufValueType::F64; }
bool is_signed(GgufValueType t) {
  return t == GgufValueType::I8 || t == GgufValueType::I16 || t == GgufValueType::I32 || t == GgufValueType::I64;
}

py::object to_python(const GgufValue& value) {
  switch (value.type) {
    case GgufValueType::String: return decode_text(value.string_value);
    case GgufValueType::Bool: return py::bool_(value.uint_value != 0);
    case GgufValueType::Array:
      if (value.element_type == GgufValueType::String) {
        py::list items(value.string_array.size());
        for (size_t i = 0; i < value.string_array.size(); ++i) items[i] = decode_text(value.string_array[i]);
        return std::move(items);
      }
      if (is_float(value.element_type)) return to_numpy(value.float_array);
      if (is_signed(value.element_type)) return to_numpy(value.int_array);
      return to_numpy(value.uint_array);
    default:
      if (is_float(value.type)) return py::float_(value.float_value);
      if (is_signed(value.type)) return py::int_(value.int_value);
      return py::int_(value.uint_value);
  }
}

py::dict metadata_dict(const GgufFile& file) {
  py::dict result;
  for (const auto& [key, value] : file.metadata()) result[decode_text(key)] = to_python(value);
  return result;
}

// The GGUF type of every value (and of an array's elements), which the Python values do not keep:
// a rewriter needs it to write each value back as it was.
py::dict value_types(const GgufFile& file) {
  py::dict result;
  for (const auto& [key, value] : file.metadata()) {
    py::object element = value.type == GgufValueType::Array ? py::cast(static_cast<uint32_t>(value.element_type)) : py::none();
    result[decode_text(key)] = py::make_tuple(static_cast<uint32_t>(value.type), element);
  }
  return result;
}

py::list tensor_list(const GgufFile& file) {
  py::list result;
  for (const auto& info : file.tensors()) {
    result.append(py::make_tuple(info.name, qvl::type_name(info.type), static_cast<uint32_t>(info.type), info.dims,
                                 info.offset, info.nbytes));
  }
  return result;
}

}  // namespace

void register_gguf(py::module_& m) {
  py::register_exception_translator([](std::exception_ptr error) {
    try {
      if (error) std::rethrow_exception(error);
    } catch (const qvl::ModelFormatError& format_error) {
      py::object cls = py::module_::import("qvl_local.errors").attr("ModelFormatError");
      PyErr_SetObject(cls.ptr(), decode_text(format_error.what()).ptr());
    }
  });

  py::class_<GgufFile, std::shared_ptr<GgufFile>>(m, "GgufFile",
                                                 "A validated, memory-mapped GGUF file (raises ModelFormatError)")
      .def(py::init([](const std::string& path) {
             py::gil_scoped_release unlocked;
             return GgufFile::open(path);
           }),
           py::arg("path"))
      .def_property_readonly("path", &GgufFile::path)
      .def_property_readonly("version", &GgufFile::version)
      .def_property_readonly("size", [](const GgufFile& f) { return f.mapped().size(); })
      .def("metadata", &metadata_dict, "All key/value pairs: scalars as Python values, number arrays as numpy")
      .def("value_types", &value_types, "(GGUF value type id, element type id or None) per key, in file order")
      .def("tensors", &tensor_list, "(name, type name, type id, ggml dims, absolute offset, byte size) per tensor")
      .def(
          "tensor_bytes",
          [](py::object self, const std::string& name) {
            const GgufFile& file = self.cast<const GgufFile&>();
            const auto& info = file.tensor(name);
            // A read-only view into the map that keeps the file open as long as the array lives.
            py::array_t<uint8_t> view({static_cast<py::ssize_t>(info.nbytes)}, {1}, file.tensor_data(info), self);
            py::detail::array_proxy(view.ptr())->flags &= ~py::detail::npy_api::NPY_ARRAY_WRITEABLE_;
            return view;
          },
          py::arg("name"), "The tensor's raw bytes as a read-only uint8 view of the memory map");
}
