/* aio.c: placeholder until the io_uring device lands (next commit). */
#include "bdev/bdev_internal.h"

#include <errno.h>

int bdev_aio_create(const char *name, const char *filename, uint32_t block_size,
		    bool readonly, const char *uuid, struct bdev **out)
{
	return -ENOTSUP;
}

int bdev_aio_rescan(struct bdev *bdev) { return -ENODEV; }
const char *bdev_aio_filename(const struct bdev *bdev) { return NULL; }
bool bdev_aio_readonly(const struct bdev *bdev) { return false; }
uint32_t bdev_aio_block_size_override(const struct bdev *bdev) { return 0; }
int bdev_aio_delete(const char *name) { return -ENODEV; }
void bdev_aio_module_fini(void) {}
