/* `mesh-client status`: prints the running client's links (status.c). */
#ifndef MESH_CLIENT_STATUS_H
#define MESH_CLIENT_STATUS_H

/* argv[1] is "status"; returns the process exit code. */
int status_main(int argc, char **argv);

#endif
