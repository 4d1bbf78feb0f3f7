/* `uspair run`: a command under the drop-in preload (tools/run.c). */
#ifndef USPAIR_TOOLS_RUN_H
#define USPAIR_TOOLS_RUN_H

int command_run(int argc, char **argv);
void print_run_usage(FILE *out);

#endif
