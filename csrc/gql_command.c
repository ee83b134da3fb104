/* gql_command.c - what the Python side tells the service thread about GraphQL operations. */
#include "gql_command.h"

#include <stdlib.h>

#include "gql_selection.h"
#include "msgbuf.h"

void gql_command_free(struct gql_command *cmd)
{
    if (!cmd)
        return;
    free(cmd->op_id);
    free(cmd->skill);
    if (cmd->sel)
        gql_selection_free(cmd->sel);
    free(cmd->since_epoch);
    msgbuf_unref(cmd->body);
    free(cmd->content_type);
    free(cmd);
}
