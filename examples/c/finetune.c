/* Fine-tune an exported training step from C: run optimizer steps on a batch, print the loss
 * after each, and read the weights back.
 *
 *   python examples/export_digits.py digits_out        # also writes digits_out/train (digits_train)
 *   make -C examples/c OUT=$PWD/digits_out finetune
 *   ./finetune digits_out/x_test.f32 digits_out/y_test.f32 16 20
 *
 * The artifact's inputs are (x (batch, 64), labels (batch,) as float32 class indices,
 * sample weights (batch,)); its outputs (loss, per-output loss, probabilities (batch, 10)).
 */
#include <stdio.h>
#include <stdlib.h>
#include "digits_train.h"

static float *read_f32(const char *path, size_t n) {
    float *a = malloc(n * sizeof *a);
    FILE *f = fopen(path, "rb");
    if (!a || !f || fread(a, sizeof *a, n, f) != n) { fprintf(stderr, "cannot read %zu floats from %s\n", n, path); exit(1); }
    fclose(f);
    return a;
}

int main(int argc, char **argv) {
    if (argc < 5) { fprintf(stderr, "usage: %s X.f32 LABELS.f32 N STEPS\n", argv[0]); return 2; }
    long n = atol(argv[3]), steps = atol(argv[4]);
    int64_t dims[8];
    digits_train_input_shape(0, n, dims);
    float *x = read_f32(argv[1], (size_t)(dims[0] * dims[1]));
    float *y = read_f32(argv[2], (size_t)n);
    float *sw = malloc((size_t)n * sizeof *sw);
    for (long i = 0; i < n; i++) sw[i] = 1.0f;
    digits_train_output_shape(2, n, dims);
    float loss, loss_out, *probs = malloc((size_t)(dims[0] * dims[1]) * sizeof *probs);

    digits_train_handle *h = digits_train_create(NULL);
    if (!h) { fprintf(stderr, "digits_train_create: %s\n", digits_train_last_error()); return 1; }
    const void *inputs[] = {x, y, sw};
    void *outputs[] = {&loss, &loss_out, probs};
    for (long s = 0; s < steps; s++) {
        if (digits_train_run(h, inputs, outputs, n)) { fprintf(stderr, "%s\n", digits_train_last_error()); return 1; }
        printf("step %ld loss %.9g\n", s, loss);
    }
    /* weight 0 is the first layer's kernel (see the manifest's weights.arrays) */
    int64_t nbytes = digits_train_weight_nbytes(0);
    float *w = malloc((size_t)nbytes);
    if (digits_train_get_weight(h, 0, w, nbytes)) { fprintf(stderr, "%s\n", digits_train_last_error()); return 1; }
    printf("weight0 %lld bytes, first value %.9g\n", (long long)nbytes, w[0]);
    digits_train_destroy(h);
    free(x); free(y); free(sw); free(probs); free(w);
    return 0;
}
