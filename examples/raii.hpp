// raii.hpp - header-only C++ wrappers for the libsardfq handles: each handle
// is a std::unique_ptr whose deleter calls the matching sardfq_*_free, and a
// failed call throws sardfq::error. An example, not part of the library or
// its ABI and not installed: copy it into your project.
//
// A state, dataset or generator must not outlive the model it was made from:
// declare the model first (locals are destroyed in reverse order).
#ifndef SARDFQ_RAII_HPP
#define SARDFQ_RAII_HPP

#include <sardfq.h>

#include <memory>
#include <stdexcept>
#include <string>

namespace sardfq {

// A failed call: the status and the library's message.
class error : public std::runtime_error {
public:
    error(sardfq_status s, const std::string &what)
        : std::runtime_error(what + ": " + sardfq_status_string(s) + ": " + sardfq_last_error()),
          status_(s) {}
    sardfq_status status() const noexcept { return status_; }

private:
    sardfq_status status_;
};

// Throw sardfq::error unless s is SARDFQ_OK.
inline void check(sardfq_status s, const char *what)
{
    if (s != SARDFQ_OK)
        throw error(s, what);
}

template <class T, void (*Free)(T *)> struct deleter {
    void operator()(T *p) const noexcept { Free(p); }
};
template <class T, void (*Free)(T *)> using handle = std::unique_ptr<T, deleter<T, Free>>;

using model = handle<sardfq_model, sardfq_model_free>;
using state = handle<sardfq_state, sardfq_state_free>;
using dataset = handle<sardfq_dataset, sardfq_dataset_free>;
using prior = handle<sardfq_prior, sardfq_prior_free>;
using generator = handle<sardfq_generator, sardfq_generator_free>;
using quantizer = handle<sardfq_quantizer, sardfq_quantizer_free>;

// Constructors. p may be nullptr for the library's defaults.
inline model load_model(const char *path, const sardfq_model_params *p = nullptr)
{
    sardfq_model *m = nullptr;
    check(sardfq_model_load(path, p, &m), path);
    return model(m);
}

inline state create_state(const model &m)
{
    sardfq_state *s = nullptr;
    check(sardfq_state_create(m.get(), &s), "create state");
    return state(s);
}

inline dataset open_dataset(const char *path, const model &m)
{
    sardfq_dataset *d = nullptr;
    check(sardfq_dataset_open(path, m.get(), &d), path);
    return dataset(d);
}

inline prior create_prior(int grid_h, int grid_w, const sardfq_prior_params *p = nullptr)
{
    sardfq_prior *pr = nullptr;
    check(sardfq_prior_create(grid_h, grid_w, p, &pr), "create prior");
    return prior(pr);
}

inline generator create_generator(const model &m, const sardfq_generator_params *p = nullptr)
{
    sardfq_generator *g = nullptr;
    check(sardfq_generator_create(m.get(), p, &g), "create generator");
    return generator(g);
}

inline quantizer create_quantizer(const model &m, const sardfq_quant_params *p = nullptr)
{
    sardfq_quantizer *q = nullptr;
    check(sardfq_quantizer_create(m.get(), p, &q), "create quantizer");
    return quantizer(q);
}

// The quantized model of a calibrated quantizer.
inline model finalize(const quantizer &q)
{
    sardfq_model *m = nullptr;
    check(sardfq_quantizer_finalize(q.get(), &m), "finalize");
    return model(m);
}

// The model's description.
inline sardfq_model_info info(const model &m)
{
    sardfq_model_info i{};
    i.struct_size = sizeof i;
    check(sardfq_model_get_info(m.get(), &i), "model info");
    return i;
}

} // namespace sardfq

#endif // SARDFQ_RAII_HPP
