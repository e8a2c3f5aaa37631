defmodule Mix.Tasks.Objectstorex.Rm do
  @shortdoc "Deletes an object, or every object under a prefix"

  @moduledoc """
  Deletes an object from a store, or with `--recursive` every object under a prefix.

      mix objectstorex.rm [OPTIONS] URL

  `URL` is any location `mix objectstorex.cp` accepts (`s3://bucket/key`, `gs://...`,
  `az://...`, `abfs://...`, `file:///dir/key`, `memory://...`, `http(s)://...`, or a local
  path).

  Without `--recursive`, the object must exist: a missing one is an error (stores themselves
  treat deleting a missing object as success, which would hide a typo). With `--recursive`, the
  keys are listed as a stream and deleted in batches (one bulk request per 500 keys where the
  store has bulk deletes); each failure is reported and the exit status is non-zero if any
  object could not be deleted. A prefix with nothing under it deletes nothing and succeeds.

  ## Options

    * `-r`, `--recursive` - delete every object under the prefix

  Credentials come from the environment, as for `mix objectstorex.cp`.
  """

  use Mix.Task

  alias ObjectStoreX.CLI

  @task "objectstorex.rm"
  @switches [recursive: :boolean]
  @batch 500

  @impl Mix.Task
  def run(args) do
    # Runnable again in the same session: `mix do objectstorex.cp a b, objectstorex.cp b c`.
    Mix.Task.reenable(@task)
    {opts, argv} = CLI.parse!(@task, args, @switches, r: :recursive)

    loc = CLI.one_location!(@task, argv)

    store = CLI.open!(@task, loc)

    if opts[:recursive], do: recursive(store, loc), else: single(store, loc)
  end

  defp single(store, loc) do
    key = CLI.Location.prefix(loc)

    if key == nil or CLI.Location.dir?(loc),
      do:
        CLI.fail!(
          @task,
          "#{CLI.Location.display(loc)} names a prefix: delete it with --recursive"
        )

    with {:ok, _meta} <- ObjectStoreX.head(store, key),
         :ok <- ObjectStoreX.delete(store, key) do
      IO.puts("removed #{CLI.Location.display(loc)}")
    else
      {:error, error} -> CLI.error!(@task, "#{CLI.Location.display(loc)}: #{error.message}")
    end
  end

  defp recursive(store, loc) do
    prefix = CLI.Location.prefix(loc)

    {deleted, failed} =
      try do
        ObjectStoreX.Stream.list_stream(store, prefix: prefix)
        |> Stream.map(& &1.location)
        |> Stream.chunk_every(@batch)
        |> Enum.reduce({0, 0}, fn keys, {deleted, failed} ->
          case ObjectStoreX.delete_many(store, keys) do
            {:ok, count, failures} ->
              Enum.each(failures, fn {key, error} ->
                IO.puts(
                  :stderr,
                  "failed #{CLI.Location.display(CLI.Location.join(loc, relative(key, prefix)))}: " <>
                    CLI.Credentials.redact(error.message)
                )
              end)

              {deleted + count, failed + length(failures)}

            {:error, error} ->
              IO.puts(
                :stderr,
                "failed to delete #{length(keys)} objects: #{CLI.Credentials.redact(error.message)}"
              )

              {deleted, failed + length(keys)}
          end
        end)
      rescue
        e in ObjectStoreX.Error ->
          CLI.error!(@task, "cannot list #{CLI.Location.display(loc)}: #{e.message}")
      end

    IO.puts(
      "removed #{deleted} object#{if deleted == 1, do: "", else: "s"} under #{CLI.Location.display(loc)}"
    )

    if failed > 0,
      do:
        CLI.error!(
          @task,
          "#{failed} object(s) under #{CLI.Location.display(loc)} could not be deleted"
        )
  end

  defp relative(key, nil), do: key
  defp relative(key, prefix), do: String.replace_prefix(key, prefix <> "/", "")
end
