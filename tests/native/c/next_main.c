#include <stdio.h>
int tf_probe(void);
int main(void) {
    printf("probe=%d\n", tf_probe());
    return 0;
}
